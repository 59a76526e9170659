"""Config files shipped with the package: protocols/, pretrain/ recipes, quickstart.py, synthactions.py.

They live inside the package so that an installed wheel can evaluate and pre-train by
name; `ssvbench.config.resolve_config_path` still accepts the `configs/...` paths the
documentation uses. They are loaded from their files (`get_config(arg)`), not imported.
"""
