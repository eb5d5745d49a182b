"""CI definitions (issue: AWX/CI like a laptop): GitHub Actions and GitLab CI run the
same make targets as a laptop, over every Molecule scenario of the repository."""

import os
import re
import subprocess

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GITHUB = os.path.join(ROOT, ".github", "workflows", "ci.yml")
GITLAB = os.path.join(ROOT, ".gitlab-ci.yml")


def scenarios():
    base = os.path.join(ROOT, "molecule")
    return sorted(d for d in os.listdir(base) if os.path.isfile(os.path.join(base, d, "molecule.yml")))


def github_scripts():
    wf = yaml.safe_load(open(GITHUB))
    out = []
    for job in wf["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                out.append(step["run"])
    return wf, out


def gitlab_scripts():
    ci = yaml.safe_load(open(GITLAB))
    out = []
    for name, job in ci.items():
        if isinstance(job, dict) and "script" in job:
            out.extend(job["script"])
    return ci, out


def make_invocations(scripts):
    calls = []
    for script in scripts:
        for m in re.finditer(r"(?:^|\s)make ((?:[a-z_-]+ ?)+)", script):
            calls.extend(m.group(1).split())
    return calls


def test_github_workflow_triggers_and_jobs():
    wf, scripts = github_scripts()
    assert set(wf["on"]) == {"push", "pull_request"}
    assert {"lint", "unit", "integration", "molecule"} <= set(wf["jobs"])
    assert "make lint" in scripts
    assert any(s.startswith("make molecule SCENARIOS=") for s in scripts)


def test_gitlab_pipeline_stages_and_jobs():
    ci, scripts = gitlab_scripts()
    for job in ("lint", "unit", "integration", "molecule"):
        assert ci[job]["stage"] in ci["stages"], job
    assert "make lint" in scripts
    assert 'make molecule SCENARIOS="$SCENARIO"' in scripts
    assert ci["molecule"]["variables"]["DOCKER_HOST"] == "tcp://docker:2375"


@pytest.mark.parametrize("which", ["github", "gitlab"])
def test_molecule_matrix_covers_every_scenario(which):
    if which == "github":
        matrix = yaml.safe_load(open(GITHUB))["jobs"]["molecule"]["strategy"]["matrix"]["scenario"]
    else:
        matrix = yaml.safe_load(open(GITLAB))["molecule"]["parallel"]["matrix"][0]["SCENARIO"]
    assert sorted(matrix) == scenarios(), "CI scenario matrix out of date with molecule/*/"
    assert "runner" in matrix


@pytest.mark.parametrize("which", ["github", "gitlab"])
def test_every_make_target_called_by_ci_exists(which):
    scripts = github_scripts()[1] if which == "github" else gitlab_scripts()[1]
    targets = sorted(set(make_invocations(scripts)))
    assert {"lint", "unit", "integration", "molecule"} <= set(targets), targets
    for target in targets:
        # dry run: make resolves the target and its prerequisites without running anything
        proc = subprocess.run(["make", "-n", target], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        assert proc.returncode == 0, "make -n %s: %s" % (target, proc.stdout)
        assert "No rule to make target" not in proc.stdout
