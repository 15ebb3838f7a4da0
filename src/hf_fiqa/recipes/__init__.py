"""Recipes: whole methods from raw photos to a trained, calibrated, evaluated model.

:mod:`.sdd_fiqa` is the project's main job (``hf-fiqa sdd-fiqa``): dlib's recognizer labels faces the
SDD-FIQA way, a MANIQA network learns the labels, and the result is compared with every simple
quality signal on identities it never saw.
"""
