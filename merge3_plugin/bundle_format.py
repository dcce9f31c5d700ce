"""The bundle file's name and version and its split names: shared by the Bundle (bundle.py, which
writes files) and the schema that reads them (bundle_schema.py), which import nothing of each other's
beyond this and the bundle's reading of the schema."""

FORMAT = "merge3-irt-bundle"
VERSION = 1
SPLITS = ("train", "validation")
