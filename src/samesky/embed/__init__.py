"""The embedding stage: models, image and spectrum preparation, batched inference."""
