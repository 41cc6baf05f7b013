"""SDSS-to-DESI resampling: our linear-interpolation path against specutils' flux-conserving resampler.

Times ``samesky.embed.spectra.resample_to_desi`` on as many SDSS-like spectra as the paper's SDSS-HSC
set (2,320), and the FluxConservingResampler on a subset as the reference; compares the integrated flux
over the overlap of the two grids.

    python benchmarks/resample_sdss.py [--n 2320] [--reference-n 50]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from samesky.embed.spectra import resample_to_desi
from samesky.surveys import desi_wavelength, sdss_wavelength


def sdss_like(rng, n_spectra):
    for _ in range(n_spectra):
        wave = sdss_wavelength(3.5798 + rng.uniform(-0.001, 0.0012), int(rng.integers(3800, 3860)))
        flux = rng.uniform(2, 20) * (wave / 6000) ** rng.uniform(-1.5, 1.5)
        for centre in rng.uniform(4000, 9000, 4):
            flux = flux + rng.uniform(5, 80) * np.exp(-0.5 * ((wave - centre) / 3) ** 2) / 7.5
        ivar = np.full(len(wave), 1 / 0.5**2)
        yield wave, flux + rng.normal(0, 0.5, len(wave)), ivar, np.zeros(len(wave), bool)


def flux_conserving(wave, flux, ivar, target):
    from astropy import units as u
    from astropy.nddata import StdDevUncertainty
    from specutils import Spectrum
    from specutils.manipulation import FluxConservingResampler

    spec = Spectrum(spectral_axis=wave * u.AA, flux=flux * u.Jy, uncertainty=StdDevUncertainty(ivar**-0.5 * u.Jy))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FluxConservingResampler(extrapolation_treatment="nan_fill")(spec, target * u.AA).flux.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2320)
    parser.add_argument("--reference-n", type=int, default=50)
    args = parser.parse_args()
    target = desi_wavelength()
    spectra = list(sdss_like(np.random.default_rng(0), args.n))
    resample_to_desi(*spectra[0])  # warm-up (imports)
    start = time.perf_counter()
    ours = [resample_to_desi(*s) for s in spectra]
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = [flux_conserving(w, f, iv, target) for w, f, iv, _ in spectra[: args.reference_n]]
    t_ref = (time.perf_counter() - start) / args.reference_n
    diffs = []
    for (w, _, _, _), o, r in zip(spectra, ours, ref):
        inside = (target > w[2]) & (target < w[-3]) & np.isfinite(r)
        diffs.append(abs(np.trapezoid(o["flux"][inside], target[inside]) / np.trapezoid(r[inside], target[inside]) - 1))
    print(f"linear interpolation (ours): {args.n} spectra in {t_ours:.1f} s ({1e3 * t_ours / args.n:.2f} ms each)")
    print(f"flux conserving (reference): {1e3 * t_ref:.1f} ms each -> {t_ref * args.n:.0f} s for {args.n} "
          f"({t_ref * args.n / t_ours:.0f}x slower)")
    print(f"integrated flux over the overlap, |ours / reference - 1|: median {np.median(diffs):.2e}, max {np.max(diffs):.2e}")
    print(f"DESI pixels outside SDSS coverage: median {np.median([o['n_outside'] for o in ours]):.0f} of {len(target)}")


if __name__ == "__main__":
    main()
