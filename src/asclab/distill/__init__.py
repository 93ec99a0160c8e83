"""Distillation from teacher ensembles: teacher logits as a checked data product
(``teacher_file``), their lookup at training time (``targets``), their computation
(``compute``), the import of CPJKU-form tensors (``cpjku_import``) and the teacher
workflow (``workflow``). The loss itself is ``asclab.losses.kd``."""
from asclab.distill.teacher_file import TeacherFile, clip_key, file_sha256

__all__ = ["TeacherFile", "clip_key", "file_sha256"]
