"""``xray``: submit chest X-rays to the analysis service and fetch the results, from a terminal.

    xray submit PATH... [--name N] [--chunk 50] [--wait] [--out results.csv] [--heatmaps DIR]
    xray submit --resume [--wait ...]          # continue an interrupted run (no image is sent twice)
    xray status BATCH
    xray results BATCH --out results.csv
    xray models
    xray submit PATH... --labels labels.csv    # with their ground truth (NIH-style CSV)
    xray labels BATCH labels.csv               # attach (or replace) a batch's ground truth; --remove drops it
    xray labels BATCH --readers-out r.csv      # readers' labels as an NIH-style CSV (xray-model train --labels)
    xray evaluate BATCH [--json] [--out evaluation.csv]

The service and token: --url/--token, or XRAY_URL/XRAY_TOKEN, or ~/.config/xray/config.toml.
Research and education only: not a medical device, not for diagnosis.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from client import config, evaluation, submit
from client.files import collect
from client.service import Api, ServiceError

STATE = Path(".xray-submit.json")


def _api(args) -> Api:
    settings = config.load(args.url, args.token)
    return Api(settings.url, settings.token)


def cmd_submit(args, console: Console) -> int:
    api = _api(args)
    if args.resume:
        if not args.state.is_file():
            raise ServiceError(f"nothing to resume: {args.state} does not exist (run `xray submit PATH...` first)")
        state = submit.State.load(args.state)
    else:
        if not args.paths:
            raise ServiceError("name the images to submit: files, folders or patterns (or --resume)")
        files = collect(args.paths)
        if not files:
            raise ServiceError("no PNG, JPEG or DICOM images were found there")
        if args.labels and not args.labels.is_file():
            raise ServiceError(f"label file {args.labels} does not exist")
        state = submit.State.new(args.state, files, args.name, args.chunk, args.labels, args.model)
        state.save()
    count = sum(len(c["files"]) for c in state.data["chunks"])
    console.print(f"{count} images in {len(state.data['chunks'])} upload(s); state in {args.state}")
    submit.upload(api, state, console)
    batch_ids = [c["batch_id"] for c in state.data["chunks"]]
    console.print("batches: " + ", ".join(batch_ids))
    if state.data.get("labels"):
        labelled = sum(c.get("labelled", 0) for c in state.data["chunks"])
        console.print(f"ground truth: {labelled} of {count} images matched a row of {state.data['labels']}; "
                      "`xray evaluate BATCH` shows the evaluation once the batch is done")
    if not (args.wait or args.out or args.heatmaps):
        return 0
    submit.wait(api, batch_ids, console)
    rows = submit.collect_results(api, state)
    if args.out:
        submit.write_csv(args.out, rows)
        console.print(f"wrote {args.out}: {len(rows)} images, all 15 probabilities each")
    if args.heatmaps:
        console.print(f"saved {submit.save_heatmaps(api, rows, args.heatmaps)} heatmaps in {args.heatmaps}")
    failed = submit.failures(rows)
    for line in failed:
        console.print(f"[red]failed[/red] {line}", highlight=False)
    return 1 if failed else 0


def cmd_status(args, console: Console) -> int:
    batch = _api(args).json(f"/api/v1/batches/{args.batch}")
    c = batch["counts"]
    line = (f"{batch['name'] or batch['id']}: {batch['done']} of {batch['total']} done ({c['succeeded']} succeeded, "
            f"{c['failed']} failed, {c['running']} running, {c['queued']} queued)")
    if batch.get("images_per_second"):
        line += f", {batch['images_per_second']:.1f} images/s"
    if not batch["finished"] and batch.get("eta_seconds"):
        line += f", about {batch['eta_seconds']:.0f} s left"
    console.print(line, highlight=False)
    return 0


def cmd_results(args, console: Console) -> int:
    api = _api(args)
    rows = submit.results_rows(api, args.batch)
    for row in rows:
        row.update(path=row["filename"], batch_id=args.batch)
    if args.out:
        submit.write_csv(args.out, rows)
        console.print(f"wrote {args.out}: {len(rows)} images")
    else:
        submit.write_csv(Path("/dev/stdout"), rows)
    return 1 if submit.failures(rows) else 0


def cmd_labels(args, console: Console) -> int:
    api = _api(args)
    if args.remove:
        api.request("DELETE", f"/api/v1/batches/{args.batch}/labels")
        console.print("removed the batch's labels")
    if args.file:
        console.print(evaluation.report_line(evaluation.put_labels(api, args.batch, args.file)), highlight=False)
    if args.readers_out:
        query = {"reader": args.reader} if args.reader else {}
        data = api.request("GET", f"/api/v1/batches/{args.batch}/reader-labels.csv", params=query).content
        args.readers_out.write_bytes(data)
        rows = max(0, len(data.splitlines()) - 1)
        console.print(f"wrote {args.readers_out}: {rows} row(s)")
    if not (args.remove or args.file or args.readers_out):
        raise ServiceError("give a label file to attach, --remove, or --readers-out FILE")
    return 0


def cmd_evaluate(args, console: Console) -> int:
    api = _api(args)
    if args.out:
        args.out.write_bytes(api.request("GET", f"/api/v1/batches/{args.batch}/evaluation.csv").content)
        console.print(f"wrote {args.out}")
    body = api.json(f"/api/v1/batches/{args.batch}/evaluation")
    if args.json:
        print(json.dumps(body, indent=1))
    else:
        for line in evaluation.evaluation_lines(body):
            print(line)
    return 0


def cmd_models(args, console: Console) -> int:
    body = _api(args).json("/api/v1/models/current")
    model = body.get("model")
    if model is None:
        console.print("no worker has reported a model yet")
        return 0
    console.print(json.dumps(model, indent=1) if args.json else
                  f"{model['name']} {model['version']} ({model['architecture']}, {'trained' if model['trained'] else 'UNTRAINED'}); "
                  f"model card: {args.url or ''}{model['card_url']}", highlight=False)
    for warning in body.get("warnings", []):
        console.print(f"[yellow]warning[/yellow]: {warning}", highlight=False)
    registry = _api(args).json("/api/v1/models")
    if args.json:
        console.print(json.dumps(registry, indent=1), highlight=False)
        return 0
    for version in registry["versions"]:
        names = f" [{', '.join(version['aliases'])}]" if version["aliases"] else ""
        console.print(f"{version['version'][:16]}  {version['status']:9}  {version['name']}{names}"
                      + (f"  ({version['reason']})" if version["reason"] else ""), highlight=False)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="xray", description=__doc__.split("\n\n")[0])
    top.add_argument("--url", help="the service (default: XRAY_URL, the config file, or http://127.0.0.1:8000)")
    top.add_argument("--token", help="an API token (default: XRAY_TOKEN or the config file)")
    commands = top.add_subparsers(dest="command", required=True)
    send = commands.add_parser("submit", help="upload images (files, folders, patterns)")
    send.add_argument("paths", nargs="*")
    send.add_argument("--name", help="a name for the batch(es), shown in the history")
    send.add_argument("--chunk", type=int, default=50, help="images per upload (default 50)")
    send.add_argument("--model", help="a model version or alias (e.g. candidate); default: the service's 'default'")
    send.add_argument("--resume", action="store_true", help="continue the interrupted run kept in --state")
    send.add_argument("--state", type=Path, default=STATE, help=f"where the run is kept (default {STATE})")
    send.add_argument("--wait", action="store_true", help="follow the analysis until every image is done")
    send.add_argument("--out", type=Path, help="write a CSV of all 15 probabilities per image (implies --wait)")
    send.add_argument("--heatmaps", type=Path, help="save the heatmaps of findings above threshold here (implies --wait)")
    send.add_argument("--labels", type=Path, help="their ground truth, an NIH-style label CSV, sent with each upload")
    labels = commands.add_parser("labels", help="attach a batch's ground truth, or download readers' labels")
    labels.add_argument("batch")
    labels.add_argument("file", nargs="?", type=Path, help="NIH-style CSV: Image Index, Finding Labels (joined by |), ...")
    labels.add_argument("--remove", action="store_true", help="remove the batch's ground truth")
    labels.add_argument("--readers-out", type=Path, help="write readers' labels here as an NIH-style CSV")
    labels.add_argument("--reader", help="with --readers-out: only this reader's labels")
    evaluate = commands.add_parser("evaluate", help="a batch's evaluation against its labels")
    evaluate.add_argument("batch")
    evaluate.add_argument("--json", action="store_true", help="print the whole evaluation as JSON")
    evaluate.add_argument("--out", type=Path, help="also write the evaluation CSV (one row per finding) here")
    status = commands.add_parser("status", help="how far a batch is")
    status.add_argument("batch")
    results = commands.add_parser("results", help="a batch's results as CSV")
    results.add_argument("batch")
    results.add_argument("--out", type=Path)
    models = commands.add_parser("models", help="the model new batches get, and every version in the registry")
    models.add_argument("--json", action="store_true")
    return top


COMMANDS = {"submit": cmd_submit, "status": cmd_status, "results": cmd_results, "models": cmd_models,
            "labels": cmd_labels, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if getattr(args, "chunk", 1) < 1:
        sys.exit("error: --chunk must be at least 1")
    console = Console(stderr=True)
    try:
        sys.exit(COMMANDS[args.command](args, console))
    except (ServiceError, FileNotFoundError) as exc:
        console.print(f"[red]error[/red]: {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: `xray submit --resume` continues without sending anything twice")
        sys.exit(130)


if __name__ == "__main__":
    main()
