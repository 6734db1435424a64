"""Neural network modules: video ViT encoder, masks, JEPA objectives, action-conditioned predictor, token pooling
and collapse statistics."""
