"""The galaxy population of the mini universe: latent properties, sky positions and rest-frame SEDs.

Every observable of every survey is drawn from these few latent properties, so that two surveys' views
of one galaxy share information (what alignment measures) and the properties can be recovered from the
data (what the probes measure):

- redshift z: shifts spectra and colours, sets apparent size and brightness;
- log M* (stellar mass): brightness, size, velocity dispersion, quenching probability, metallicity;
- log Z_MW (log10 of Z/Z_sun, mass-weighted): metal absorption depth and line blanketing, 4000 A break,
  [NII]/Halpha; it follows mass with 0.3 dex scatter, so images see it mainly through mass;
- t_age (mass-weighted age, Gyr): 4000 A break, Balmer absorption (deepest at ~0.6 Gyr), red continuum;
- log sSFR (yr^-1): blue continuum and emission-line strength;
- dust A_V, bulge fraction, axis ratio and position angle: nuisance parameters seen by images.
- morphology (draw_morphology, a stream of its own): smooth round/cigar, edge-on disk, spiral with or
  without a bar, merger; images see it all, spectra only through quiescence (smooth galaxies are mostly
  quenched), and a Galaxy Zoo-like vote catalogue sees it as far as Legacy-like images resolve it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

C_KMS = 299792.458
Z_SUN = 0.019  # the solar metallicity PROVABGS uses for Z_MW

# rest wavelengths (A, vacuum) of the emission lines and their strength relative to Halpha for a
# solar-metallicity star-forming galaxy; metallicity then tilts [NII] up and [OIII] down.
EMISSION_LINES = {
    "OII_3727": (3728.5, 0.9), "Hdelta": (4102.9, 0.07), "Hgamma": (4341.7, 0.16),
    "Hbeta": (4862.7, 0.35), "OIII_4960": (4960.3, 0.12), "OIII_5008": (5008.2, 0.36),
    "NII_6550": (6549.9, 0.10), "Halpha": (6564.6, 1.0), "NII_6585": (6585.3, 0.30),
    "SII_6718": (6718.3, 0.17), "SII_6733": (6732.7, 0.12),
}
# absorption features of old, metal-rich stars (centre A, width A, base depth)
ABSORPTION_LINES = [
    (3934.8, 8.0, 0.35), (3969.6, 8.0, 0.30), (4305.0, 12.0, 0.12), (5176.7, 15.0, 0.12),
    (5270.0, 10.0, 0.06), (5895.0, 10.0, 0.08), (8542.0, 10.0, 0.05), (8662.0, 10.0, 0.04),
]
# metal-line blanketing: many weak lines of Fe, Mg, Cr, Ti... crowded blueward of 5500 A; a fixed list
# (centre A, width A, base depth) drawn once, so every galaxy has the same lines at different depths
_forest = np.random.default_rng(20240601)
METAL_FOREST = np.column_stack([
    3550 + 3200 * _forest.beta(1.3, 2.2, 160), _forest.uniform(1.5, 4.0, 160), _forest.uniform(0.03, 0.15, 160),
])
# Balmer absorption of A stars: deep in populations ~0.3-1 Gyr old, shallow in old ones (centre A, width A, depth)
BALMER_ABSORPTION = [(4102.9, 14.0, 0.25), (4341.7, 14.0, 0.22), (4862.7, 14.0, 0.18), (3890.2, 10.0, 0.2)]
# the three tables as columns, in order (line_absorption subtracts the lines in this order)
LINE_CENTRE, LINE_WIDTH, LINE_BASE = np.concatenate([np.asarray(ABSORPTION_LINES), METAL_FOREST,
                                                     np.asarray(BALMER_ABSORPTION)]).T.copy()
N_STRONG, N_METAL = len(ABSORPTION_LINES), len(ABSORPTION_LINES) + len(METAL_FOREST)
LINE_WINDOW = np.stack([LINE_CENTRE - 40 * LINE_WIDTH, LINE_CENTRE + 40 * LINE_WIDTH])  # where each can be > 0


def draw_properties(n: int, rng: np.random.Generator, environment: np.ndarray | None = None) -> pd.DataFrame:
    """Latent properties for ``n`` galaxies; ``environment`` (0..1) raises the quenched fraction."""
    from astropy.cosmology import Planck18

    env = np.zeros(n) if environment is None else np.asarray(environment, float)
    z = np.clip(0.02 + rng.gamma(2.4, 0.15, n), 0.02, 1.4)
    log_mstar = np.clip(rng.normal(10.0, 0.55, n) + 0.6 * z, 8.5, 11.9)
    p_quiescent = 1 / (1 + np.exp(-(log_mstar - 10.55) / 0.25)) * (1 - 0.35 * (1 - env)) + 0.25 * env
    quiescent = rng.random(n) < np.clip(p_quiescent, 0, 0.95)
    log_ssfr = np.where(
        quiescent,
        rng.normal(-11.9, 0.35, n),
        rng.normal(-9.75, 0.28, n) - 0.25 * (log_mstar - 10.0) + 0.6 * np.log10(1 + z),
    )
    t_universe = Planck18.age(z).value
    # mass-weighted age: old for quenched galaxies, younger the more star-forming
    frac = np.where(quiescent, rng.beta(7, 2.5, n), np.clip(0.55 - 0.18 * (log_ssfr + 9.75) + rng.normal(0, 0.08, n), 0.12, 0.8))
    t_age = np.clip(frac * (t_universe - 0.3), 0.5, None)
    log_z_mw = np.clip(-0.35 + 0.28 * (log_mstar - 10.0) + 0.1 * quiescent + rng.normal(0, 0.3, n), -1.3, 0.45)
    a_v = np.clip(0.15 + 0.45 * (log_ssfr + 10.5) / 1.5 + 0.25 * (log_mstar - 10) + rng.normal(0, 0.12, n), 0, 2.0)
    a_v = np.where(quiescent, np.clip(a_v * 0.3, 0, 0.4), a_v)

    # size-mass relation (kpc), smaller when quenched, then to arcsec
    r_eff_kpc = 10 ** (0.22 * (log_mstar - 10.5) + 0.6 - 0.18 * quiescent + rng.normal(0, 0.12, n))
    kpc_per_arcsec = Planck18.angular_diameter_distance(z).to_value("kpc") / 206264.806
    r_eff = np.clip(r_eff_kpc / kpc_per_arcsec, 0.15, 8.0)
    bulge_fraction = np.clip(np.where(quiescent, rng.normal(0.7, 0.12, n), rng.normal(0.22, 0.12, n)), 0.02, 0.98)
    axis_ratio = np.clip(np.where(quiescent, rng.uniform(0.55, 1.0, n), rng.uniform(0.2, 1.0, n)), 0.15, 1)
    sigma_v = np.clip(10 ** (0.3 * (log_mstar - 10.0) + 2.05 + rng.normal(0, 0.05, n)), 40, 400)

    # absolute r magnitude from a mass-to-light ratio that grows with age, then the distance modulus
    log_ml = -0.2 + 0.55 * np.log10(t_age) + 0.1 * log_z_mw + 0.2 * a_v / 1.0
    abs_mag_r = 4.65 - 2.5 * (log_mstar - log_ml)
    mag_r = abs_mag_r + Planck18.distmod(z).value - 2.5 * np.log10(1 + z) * 0.5

    return pd.DataFrame({
        "z": z, "log_mstar": log_mstar, "log_z_mw": log_z_mw, "t_age_gyr": t_age, "log_ssfr": log_ssfr,
        "quiescent": quiescent, "a_v": a_v, "mag_r": mag_r, "r_eff_arcsec": r_eff,
        "bulge_fraction": bulge_fraction, "axis_ratio": axis_ratio,
        "position_angle_deg": rng.uniform(0, 180, n), "sigma_v_kms": sigma_v, "environment": env,
    })


def draw_positions(n: int, rng: np.random.Generator, ra_center: float, dec_center: float, width_deg: float,
                   n_clusters: int, cluster_fraction: float, cluster_radius_arcsec: float):
    """Clustered sky positions in a square patch: a Neyman-Scott process over a uniform field.

    Returns ra, dec (deg, ra wrapped to [0, 360)) and a 0..1 environment density proxy (1 at a cluster
    centre). The patch may straddle RA = 0/360; offsets are applied in the tangent plane.
    """
    n_cl = int(round(n * cluster_fraction)) if n_clusters > 0 else 0
    half = width_deg / 2
    x = rng.uniform(-half, half, n)
    y = rng.uniform(-half, half, n)
    env = np.zeros(n)
    if n_cl:
        centres = rng.uniform(-0.8 * half, 0.8 * half, (n_clusters, 2))
        host = rng.integers(0, n_clusters, n_cl)
        scale = cluster_radius_arcsec / 3600
        off = rng.normal(0, scale, (n_cl, 2))
        x[:n_cl] = np.clip(centres[host, 0] + off[:, 0], -half, half)
        y[:n_cl] = np.clip(centres[host, 1] + off[:, 1], -half, half)
        env[:n_cl] = np.exp(-0.5 * (off ** 2).sum(1) / scale**2)
    dec = dec_center + y
    ra = np.mod(ra_center + x / np.cos(np.radians(dec)), 360.0)
    return ra, dec, env


def offset_positions(ra, dec, dx_arcsec, dy_arcsec):
    """Move positions by small tangent-plane offsets (arcsec east, north)."""
    dec2 = dec + np.asarray(dy_arcsec) / 3600
    ra2 = np.mod(ra + np.asarray(dx_arcsec) / 3600 / np.cos(np.radians(dec)), 360.0)
    return ra2, dec2


def _planck(wave_a, temperature):
    """Blackbody f_lambda (arbitrary units) at wavelengths in Angstrom."""
    x = 1.4388e8 / (wave_a * temperature)  # hc / (lambda k T), lambda in A
    return wave_a ** -5 / np.expm1(np.clip(x, 1e-6, 700))


def continuum(wave_rest, t_age, log_z, log_ssfr, a_v):
    """Rest-frame continuum f_lambda (arbitrary units) of one galaxy."""
    t_old = 4300 + 1400 / (1 + t_age / 1.5) - 250 * log_z
    old = _planck(wave_rest, t_old)
    # 4000 A break: stronger for old and metal-rich populations
    depth = np.clip(0.12 + 0.45 * (1 - np.exp(-t_age / 3.0)) + 0.12 * log_z, 0.05, 0.8)
    old = old * (1 - depth * expit(-(wave_rest - 4000.0) / 25.0))
    young = _planck(wave_rest, 17000.0) * 10 ** (log_ssfr + 9.6) * 2.0
    sed = old / _planck(5500.0, t_old) + young / _planck(5500.0, 17000.0) * 0.4
    absorb = line_absorption(wave_rest, t_age, log_z)
    return sed * np.clip(absorb, 0.05, 1) * 10 ** (-0.4 * a_v * (wave_rest / 5500.0) ** -0.8)


def line_absorption(wave_rest, t_age, log_z):
    """One minus the absorption lines' Gaussians (ABSORPTION_LINES, METAL_FOREST, BALMER_ABSORPTION) at
    ``wave_rest`` (any shape), their depths set by metallicity and age."""
    metal = 10 ** (1.5 * log_z) * np.clip(t_age / 6.0, 0.2, 1.3) ** 0.5
    balmer = np.exp(-0.5 * (np.log(t_age / 0.6) / 0.9) ** 2)
    absorb = np.ones_like(wave_rest)
    depth = np.concatenate([np.minimum(np.maximum(LINE_BASE[:N_STRONG] * metal, 0), 0.7),
                            np.minimum(np.maximum(LINE_BASE[N_STRONG:N_METAL] * metal, 0), 0.5),
                            LINE_BASE[N_METAL:] * balmer])
    # Each line's Gaussian is subtracted in turn, in the tables' order (the same float sums as one line at a
    # time). A Gaussian is exactly 0.0 in float64 beyond 38.6 widths, so on a sorted wavelength grid it is
    # evaluated only within 40 widths of its centre: the same numbers, ~20 times fewer exps. On any other
    # grid (a few points per band) every line is evaluated at once, elementwise the same numbers.
    if wave_rest.ndim == 1 and bool(np.all(wave_rest[1:] > wave_rest[:-1])):
        lo, hi = np.searchsorted(wave_rest, LINE_WINDOW)
        for centre, width, d, a, b in zip(LINE_CENTRE, LINE_WIDTH, depth, lo, hi):
            absorb[a:b] -= d * np.exp(-0.5 * ((wave_rest[a:b] - centre) / width) ** 2)
    else:
        per_line = (-1,) + (1,) * wave_rest.ndim
        terms = depth.reshape(per_line) * np.exp(-0.5 * ((wave_rest[None] - LINE_CENTRE.reshape(per_line))
                                                         / LINE_WIDTH.reshape(per_line)) ** 2)
        for term in terms:
            absorb -= term
    return absorb


def line_fluxes(log_ssfr, log_z, a_v, continuum_halpha):
    """Emission-line fluxes (flux * A, same units as the continuum) for one galaxy."""
    ew_halpha = 10 ** (1.25 + 0.85 * (log_ssfr + 9.75))  # A, ~18 A on the main sequence
    ew_halpha = 0.0 if log_ssfr < -11.2 else ew_halpha
    halpha = ew_halpha * continuum_halpha
    out = {}
    for name, (wave, ratio) in EMISSION_LINES.items():
        if name.startswith("NII"):
            ratio *= 10 ** (0.9 * log_z)
        elif name.startswith("OIII"):
            ratio *= 10 ** (-1.1 * log_z)
        dust = 10 ** (-0.4 * a_v * ((wave / 6564.6) ** -0.8 - 1))  # relative to Halpha
        out[name] = (wave, halpha * ratio * dust)
    return out


def band_flux_ratios(wave_obs_bands, z, t_age, log_z, log_ssfr, a_v, ref_wave=6175.0):
    """Mean f_nu in each band relative to the r band, from the continuum seen at redshift z."""
    wave_obs_bands = np.asarray(wave_obs_bands, float)
    grid = np.linspace(-0.1, 0.1, 9)  # a 20%-wide top-hat filter
    waves = np.concatenate([wave_obs_bands, [ref_wave]])[:, None] * (1 + grid)[None, :]
    f_lam = continuum(waves / (1 + z), t_age, log_z, log_ssfr, a_v)
    f_nu = (f_lam * waves**2).mean(axis=1)
    return f_nu[:-1] / f_nu[-1]


# morphology: the true class of each galaxy (labels.CLASSES) and the shape columns the images render
MORPHOLOGY_COLUMNS = ("spiral_strength", "arm_pitch_deg", "arm_phase_deg", "bar_strength", "bar_angle_deg",
                      "merger_flux_ratio", "merger_sep_reff", "merger_angle_deg")
DISK_THICKNESS = 0.12  # intrinsic axis ratio q0 of a disk seen edge-on


def draw_morphology(props: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """``props`` with a true morphology class and its shape parameters; ``axis_ratio`` is redrawn.

    Images see the whole morphology; spectra see it only through quiescence (smooth galaxies are mostly
    quenched, disks mostly star-forming), so they can partly tell smooth from disk but not arms, bars,
    inclination or mergers. ``rng`` must be a stream of its own: every other column keeps its value, so
    the spectra and the PROVABGS-like catalogue do not change when the morphology does.

    Columns: ``morphology`` (the class; "merger" for mergers), ``shape_class`` (what the galaxy looks
    like under a merger's disturbance: its class without the merger) and ``MORPHOLOGY_COLUMNS`` (0 where
    the feature is absent). Every draw is made for every row, so one row's class never shifts the
    stream of the others.
    """
    n = len(props)
    out = props.copy()
    env = props["environment"].to_numpy(float)
    quiescent = props["quiescent"].to_numpy(bool)
    log_mstar = props["log_mstar"].to_numpy(float)

    merger = rng.random(n) < 0.04 + 0.08 * env  # rare, commoner where galaxies crowd
    smooth = rng.random(n) < np.where(quiescent, 0.85, 0.12)
    q_smooth = rng.uniform(0.3, 1.0, n)
    # a thin disk at a random inclination: cos(i) uniform, projected axis ratio with thickness q0
    cos_i = rng.random(n)
    q_disk = np.sqrt(cos_i**2 * (1 - DISK_THICKNESS**2) + DISK_THICKNESS**2)
    axis_ratio = np.where(smooth, q_smooth, q_disk)
    edge_on = ~smooth & (q_disk < 0.3)
    spiral = ~smooth & ~edge_on
    strength = rng.uniform(0.6, 1.0, n)  # arm contrast: at 1 the disk between the arms is dark
    pitch = rng.uniform(12, 30, n)
    phase = rng.uniform(0, 360, n)
    barred = spiral & (rng.random(n) < 0.25 + 0.25 * (log_mstar > 10.5))  # bars are commoner in massive disks
    bar_strength = rng.uniform(0.25, 0.45, n)
    bar_angle = rng.uniform(0, 180, n)
    flux_ratio = rng.uniform(0.3, 0.8, n)
    sep = rng.uniform(0.8, 1.8, n)
    angle = rng.uniform(0, 360, n)

    shape = np.where(smooth, np.where(axis_ratio < 0.6, "smooth_cigar", "smooth_round"),
                     np.where(edge_on, "edge_on_disk", np.where(barred, "barred_spiral", "unbarred_spiral")))
    out["axis_ratio"] = axis_ratio
    out["morphology"] = np.where(merger, "merger", shape).astype(object)
    out["shape_class"] = shape.astype(object)
    # edge-on disks show neither arms nor bars; smooth galaxies have no disk features at all
    out["spiral_strength"] = np.where(spiral, strength, 0.0)
    out["arm_pitch_deg"] = np.where(spiral, pitch, 0.0)
    out["arm_phase_deg"] = np.where(spiral, phase, 0.0)
    out["bar_strength"] = np.where(barred, bar_strength, 0.0)
    out["bar_angle_deg"] = np.where(barred, bar_angle, 0.0)
    out["merger_flux_ratio"] = np.where(merger, flux_ratio, 0.0)
    out["merger_sep_reff"] = np.where(merger, sep, 0.0)
    out["merger_angle_deg"] = np.where(merger, angle, 0.0)
    return out
