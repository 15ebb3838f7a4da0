"""Model families. Importing this package registers every family with the transformers Auto classes."""

from . import dlib_resnet, iresnet, maniqa, mobilefacenet, musiq  # noqa: F401  (registration side effects)
