"""Re-aim the copied project at the answers (cookiecutter renders this file with them).

All logic lives in the generated project's own library (german_credit_scoring.scaffold, renamed as
part of the run), so it is tested like the rest of the code and `mlops retarget` reuses it.
The working directory is the generated project.
"""

import json
import sys
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | jsonify }}""")

project = Path.cwd()
sys.path.insert(0, str(project / "src"))
from german_credit_scoring.scaffold import ScaffoldError, post_generation  # noqa: E402

try:
    notes = post_generation(project, ANSWERS)
except ScaffoldError as error:
    print("Cannot generate the project:", file=sys.stderr)
    for line in str(error).splitlines():
        print(f"  - {line}", file=sys.stderr)
    sys.exit(1)
for note in notes:
    print(f"note: {note}")
print(f"Generated {ANSWERS['project_name']} in {project}")
