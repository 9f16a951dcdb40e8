"""TFDS builders of the landmark_ssl datasets, one sub-package per dataset.

``data_builders/<name>/<name>_dataset_builder.py`` defines the builder class
(``Shapes``, ``Blocks``, ``Hgr1``, ``Multipie``, ``The300w``); all store
``array_record`` files readable with ``tfds.data_source`` and never need
TensorFlow. ``python -m landmark_ssl.build_data --dataset=<name>`` builds one.
"""
