"""House prices (Kaggle / Ames): regression of SalePrice, scored as RMSE of log price."""
