"""What leaves a run as data: its corrected labels as a dataset (``export.py``, ``adele export-labels``), the ranking of the
labels it was given (``ranking.py``) and the verdict on them (``verdict.py``), the labels in the source's own space
(``source_space.py``), an nnU-Net raw dataset with the suspect pixels ignored (``nnunet_dataset.py``) and Label Studio
tasks (``labelstudio.py``)."""
