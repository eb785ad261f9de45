"""Customer churn (IBM Telco; Kaggle Customer Churn Dataset): calibrated probabilities and a business threshold."""
