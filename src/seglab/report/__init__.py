"""Human-readable output: tables, plots, mosaics and the HTML report."""
