"""advanced-debugging: gradient flow, activation statistics, training anomalies, TensorBoard export."""
