"""MNIST digits: XGBoost, a classical deskew/PCA/SVM pipeline and a small Keras CNN, compared in one experiment."""
