"""Analysis of invariance-controllable encoders.

* :mod:`core.analysis.invariance`: cosine / Mahalanobis invariance per transform and descriptor.
* :mod:`core.analysis.interpolation`: descriptor paths and curves along them.
* :mod:`core.analysis.bound`: the generalisation bound of Theorem 5.1.
* :mod:`core.analysis.plots`: radar, Pareto, interpolation and invariance figures (PNG);
  import it explicitly (``from core.analysis.plots import radar_plot``) so that matplotlib is
  only loaded when a figure is drawn.
"""
from core.analysis.bound import bound_from_readout, bound_terms, generalisation_bound
from core.analysis.interpolation import descriptor_path, interpolation_curve, score_curve
from core.analysis.invariance import measure_invariance, summarise_invariance

__all__ = [
    "bound_from_readout",
    "bound_terms",
    "descriptor_path",
    "generalisation_bound",
    "interpolation_curve",
    "measure_invariance",
    "score_curve",
    "summarise_invariance",
]
