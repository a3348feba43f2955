"""Classical forecasting baselines (naive, seasonal naive, ETS, SARIMA) and rolling-origin scoring."""
