"""``hf-metaopt push RUN_DIR --repo-id NAMESPACE/NAME [--space OWNER/NAME]``: publish a checkpoint or an analysis run.

A folder with ``config.json`` is a checkpoint (pushed with its model card); a folder with
``report.json`` is an analysis run (its card, report, report.html, per-query scores and plots,
with eval results in the repo's card). ``--space`` publishes an analysis run's report.html as a
static Space (with or without ``--repo-id``). The token comes from ``--token``, ``HF_TOKEN`` or
``hf auth login``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="push a checkpoint folder or an analysis run folder to the Hub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="checkpoint folder (config.json) or analysis run folder (report.json)")
    parser.add_argument("--repo-id", default=None, help="target repo, 'namespace/name'")
    parser.add_argument("--space", default=None, metavar="OWNER/NAME",
                        help="analysis runs: also (or only) publish report.html as this static Space")
    parser.add_argument("--kind", choices=("auto", "checkpoint", "report"), default="auto", help="what RUN_DIR holds (default: detect)")
    parser.add_argument("--create-pr", action="store_true", default=None, help="open a pull request instead of committing to the branch")
    parser.add_argument("--private", action="store_true", help="create the repo as private if it does not exist")
    parser.add_argument("--revision", default=None, help="branch to commit to (created if missing)")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the `hf auth login` cache)")
    parser.add_argument("--model-id", default=None, help="reports: the analysed model's Hub id (default: the report's config)")
    parser.add_argument("--commit-message", default=None)
    parser.set_defaults(func=run)


def _kind(run_dir: Path, requested: str) -> str:
    if not run_dir.is_dir():
        raise FileNotFoundError(f"RUN_DIR {run_dir} is not a folder.")
    if requested != "auto":
        return requested
    is_checkpoint = (run_dir / "config.json").is_file()
    is_report = (run_dir / "report.json").is_file()
    if is_checkpoint and is_report:
        raise ValueError(f"{run_dir} holds both config.json and report.json; say which to push with --kind checkpoint or --kind report.")
    if not (is_checkpoint or is_report):
        raise ValueError(f"{run_dir} holds neither config.json (a checkpoint) nor report.json (an analysis run).")
    return "checkpoint" if is_checkpoint else "report"


def _push_repo(kind: str, run_dir: Path, args: argparse.Namespace):
    from ..hub import push_model, push_report

    if kind == "checkpoint":
        return push_model(run_dir, args.repo_id, token=args.token, private=args.private, revision=args.revision,
                          commit_message=args.commit_message, create_pr=bool(args.create_pr))
    return push_report(run_dir, args.repo_id, token=args.token, create_pr=args.create_pr, private=args.private,
                       revision=args.revision, model_id=args.model_id, commit_message=args.commit_message)


def run(args: argparse.Namespace) -> int:
    from ..hub import HubPushError, push_space

    run_dir = Path(args.run_dir)
    if args.repo_id is None and args.space is None:
        raise ValueError("say where to push: --repo-id NAMESPACE/NAME (a Hub repo), --space OWNER/NAME (a static Space "
                         "showing an analysis run's report.html), or both.")
    kind = _kind(run_dir, args.kind)
    if kind == "checkpoint" and args.space is not None:
        raise ValueError(f"--space publishes an analysis run's report.html; {run_dir} is a checkpoint: push it with --repo-id only.")
    urls = []
    try:
        if args.repo_id is not None:
            info = _push_repo(kind, run_dir, args)
            urls.append(info.pr_url or info.commit_url)
        if args.space is not None:
            info = push_space(run_dir, args.space, token=args.token, private=args.private, commit_message=args.commit_message)
            urls.append(info.commit_url)
    except HubPushError as err:
        print(f"hf-metaopt push: error: {err}", file=sys.stderr)
        return 1
    print("\n".join(urls))
    return 0
