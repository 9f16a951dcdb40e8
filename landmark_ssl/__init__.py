"""landmark_ssl: semi-supervised landmark localization in JAX/Flax.

Implements Honari et al., "Improving Landmark Localization with
Semi-Supervised Learning" (CVPR 2018): sequential multi-tasking (Seq-MT,
class labels train the landmark net through a soft-argmax) and the
equivariant landmark transformation (ELT) cost.

Modules depend one way: geometry <- losses <- models <- steps <- train <- main.
Importing the package itself imports nothing heavy; import the module you need
(``landmark_ssl.geometry``, ``landmark_ssl.losses``, ...).
"""

__version__ = "0.1.0"
