"""Pictures and reports: the per-sample figure and the per-episode HTML report."""
