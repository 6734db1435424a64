"""World models that plan: data, encoders, predictors, training and evaluation."""
