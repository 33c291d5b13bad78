"""What every verb stands on: user-facing errors (``errors``), typed configs from YAML and ``--set`` (``typed``),
experiment files (``experiments``), records (``schema``: what each kind holds and its builder; ``records``: the one
writer and reader), run folders and their manifests (``runs``), content hashes (``hashing``) and a small lazy
registry (``registry``). Never imports torch."""
