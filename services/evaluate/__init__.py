"""Quality evaluation of a swap (identity, expression, stability, blending) and its HTML/JSON report."""
