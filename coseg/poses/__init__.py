"""Photos only -> cameras: structure from motion with pycolmap (`coseg poses`).

`recover_poses(PHOTOS, SCENE)` writes a COLMAP scene folder (``images/``,
``sparse/0/``) that `coseg.readers.read_scene` opens, with the sparse points
for initialisation. See docs/scene-formats.md, "Photos without poses".
"""

from coseg.poses.config import PosesConfig, choose_matcher, image_pairs, looks_like_video
from coseg.poses.sfm import RegistrationFailed, is_photo_folder, list_photos, recover_poses

__all__ = ["PosesConfig", "RegistrationFailed", "choose_matcher", "image_pairs", "is_photo_folder",
           "list_photos", "looks_like_video", "recover_poses"]
