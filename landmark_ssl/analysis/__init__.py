"""Analysis of finished runs, JAX-free: records and cells (``runs``), the
paper's claims as paired effects (``effects``), the figures' captions
(``figure_manifest``). ``report`` and ``figures`` build on it."""
