#!/usr/bin/python3
"""The include layering (scripts/check_layout.py): the tree as it is
passes, and the checker refuses the includes the architecture forbids
(an API service reaching the model manager, a lower layer reaching a
higher one, common/ reaching a program) in a copy of the tree."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "scripts", "check_layout.py")


def check(root: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, CHECK, root], capture_output=True, text=True,
                          timeout=60)


class LayoutTest(unittest.TestCase):
    def test_the_tree_follows_the_layering(self) -> None:
        result = check(ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_forbidden_includes_are_named(self) -> None:
        cases = [
            ("server/api/classifier_service.cc", '#include "server/repository/model_manager.h"',
             "server/api/ may include only"),
            ("server/core/batcher.cc", '#include "server/shadow/shadow_tap.h"',
             "server/core/ may include only"),
            ("server/backend/model_info.cc", '#include "server/core/refusal.h"',
             "server/backend/ may include only"),
            ("common/mqtt_client.cc", '#include "client/camera/camera.h"',
             "common/ may include only its own folder"),
            ("client/camera/camera.cc", '#include "server/core/image.h"',
             "client/camera/ may include only"),
            ("client/admin/matid_admin_main.cc", '#include "client/classify/file_classifier.h"',
             "client/admin/ may include only"),
        ]
        for path, include, message in cases:
            with self.subTest(path=path), tempfile.TemporaryDirectory() as copy:
                for folder in ("server", "common", "client"):
                    shutil.copytree(os.path.join(ROOT, folder), os.path.join(copy, folder))
                with open(os.path.join(copy, path), "a") as source:
                    source.write(include + "\n")
                result = check(copy)
                self.assertEqual(result.returncode, 1, result.stderr)
                self.assertIn(f"{path}:", result.stderr)
                self.assertIn(message, result.stderr)
                self.assertIn(include.split('"')[1], result.stderr)


if __name__ == "__main__":
    unittest.main()
