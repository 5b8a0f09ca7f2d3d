"""Looking at results: plot functions, the PCM patch-by-patch inspection, and the ipywidgets panels over them."""
