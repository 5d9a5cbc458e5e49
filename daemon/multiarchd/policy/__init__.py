"""The policy files: YAML read into nodes that keep their line and column (yamlnodes.py, the only
PyYAML importer), each value checked (fields.py), sections validated and drop-ins merged
(validate.py) into a model.policy.Policy; files.py finds and reads the files."""

DEFAULT_PATH = "/etc/multiarch/arches.yaml"  # the main file (drop-ins: places.dropin_dirs)
