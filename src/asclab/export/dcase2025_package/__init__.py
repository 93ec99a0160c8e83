"""The template of the DCASE 2025 task 1 inference package that ``asclab package`` writes.

``asclab.export.package.write_package`` copies these files verbatim (no textual
substitution) into the package ``NAME`` it writes:

* ``_frontend.py``, ``_net.py``, ``_common.py`` -> ``NAME/`` (front end, CP-Mobile, the API),
* ``submission_module.py`` -> ``NAME/NAME_<i>.py`` (the per-submission module; it finds its
  package from ``__package__`` and its weights ``NAME/ckpts/NAME_<i>.pt`` from its own file name),
* ``evaluate_submission.py`` -> beside ``NAME/`` (it takes the package from the one package
  folder beside it, or ``--package``),
* ``pyproject.toml.in`` -> ``pyproject.toml`` (the only file written from a template: the
  distribution name ``__PKG__`` is substituted).

The modules import only torch, numpy, soundfile, the standard library and each other
(relative imports), never asclab, so they work unchanged both here (importable and testable
as ``asclab.export.dcase2025_package._frontend`` etc.) and inside the written package.
This ``__init__.py`` itself is not copied.
"""
