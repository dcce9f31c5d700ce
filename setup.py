"""Only here to install merge3-lm-eval.pth next to the packages (pyproject.toml holds the metadata).

The .pth file lets a plain `lm_eval --tasks 'merge3_*'` find merge3 tasks; see
lm_eval_tasks/startup.py for what it does at start-up (almost nothing) and how to turn it off.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "merge3-lm-eval.pth"


class BuildWithPth(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / PTH
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).parent / "lm_eval_tasks" / PTH, target)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


setup(cmdclass={"build_py": BuildWithPth})
