"""Neural network modules: video ViT encoder, masks, JEPA objectives, action-conditioned predictor."""
