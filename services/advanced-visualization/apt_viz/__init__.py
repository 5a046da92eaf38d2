"""advanced-visualization: self-contained HTML dashboards, attention maps and comparison reports."""
