#!/usr/bin/env python3
"""The bucket side of demo/scaleout/run.sh, with boto3: make and empty the bucket, list what
is in it, hash an object, time a direct upload (the reference the FTP figures are compared
to), and read the nodes' logs.

Usage: s3.py COMMAND ARGS...; the endpoint and keys come from S3_ENDPOINT,
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Every command prints one line or a small
table and exits non-zero on failure.
"""

import hashlib
import json
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def objects(s3, bucket, prefix):
    """Every object under prefix: {key: size}."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def uploads(s3, bucket, prefix):
    """Multipart uploads begun and neither completed nor aborted: [(key, id, parts)]."""
    out = []
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    for u in r.get("Uploads", []):
        parts = s3.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        size = sum(p["Size"] for p in parts.get("Parts", []))
        out.append((u["Key"], u["UploadId"], len(parts.get("Parts", [])), size))
    return out


def main(argv):
    cmd, args = argv[1], argv[2:]
    s3 = client()
    if cmd == "mkbucket":
        s3.create_bucket(Bucket=args[0])
        # What docs/deploy.md advises: unfinished multipart uploads (a node killed
        # mid-upload leaves one) removed after a day.
        s3.put_bucket_lifecycle_configuration(
            Bucket=args[0],
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "abort-unfinished-uploads",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    }
                ]
            },
        )
        rules = s3.get_bucket_lifecycle_configuration(Bucket=args[0])["Rules"]
        print(f"bucket {args[0]} made, lifecycle rule {rules[0]['ID']}")
    elif cmd == "expect":
        # expect BUCKET PREFIX LOCALDIR: the objects under PREFIX are exactly the files
        # under LOCALDIR, with their sizes.
        bucket, prefix, local = args
        want = {}
        for dirpath, _, files in os.walk(local):
            for f in files:
                p = os.path.join(dirpath, f)
                want[prefix + os.path.relpath(p, local)] = os.path.getsize(p)
        # Directory markers (keys ending in /) are what MKD leaves; they hold no file.
        got = {k: v for k, v in objects(s3, bucket, prefix).items() if not k.endswith("/")}
        bad = False
        for k in sorted(set(want) | set(got)):
            w, g = want.get(k), got.get(k)
            mark = "ok" if w == g else "MISMATCH"
            bad |= w != g
            print(f"  {mark:8} {k:40} local {w!s:>10}  bucket {g!s:>10}")
        print(f"  {len(got)} objects in the bucket, {len(want)} files sent")
        return 1 if bad else 0
    elif cmd == "absent":
        # absent BUCKET KEY: no object under KEY (a half-written one included); prints the
        # multipart uploads left unfinished under it, which are not objects.
        bucket, key = args
        try:
            h = s3.head_object(Bucket=bucket, Key=key)
            print(f"  OBJECT EXISTS: {key}, {h['ContentLength']} bytes")
            return 1
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
        listed = [k for k in objects(s3, bucket, key) if k == key]
        if listed:
            print(f"  OBJECT LISTED: {key}")
            return 1
        left = uploads(s3, bucket, key)
        print(f"  no object {key} (HEAD 404, not listed)")
        for k, uid, n, size in left:
            print(f"  unfinished multipart upload of {k}: {n} parts, {size} bytes, invisible")
        print(f"  unfinished-uploads {len(left)}")
    elif cmd == "abort-unfinished":
        bucket, prefix = args
        for k, uid, _, _ in uploads(s3, bucket, prefix):
            s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=uid)
            print(f"  aborted the unfinished upload of {k}")
    elif cmd == "sha256":
        bucket, key = args
        h = hashlib.sha256()
        n = 0
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(1 << 20):
            h.update(chunk)
            n += len(chunk)
        print(f"{h.hexdigest()} {n}")
    elif cmd == "put-timed":
        # put-timed BUCKET KEY FILE: a direct multipart upload, the reference; prints seconds.
        bucket, key, path = args
        from boto3.s3.transfer import TransferConfig

        cfg = TransferConfig(multipart_chunksize=8 << 20, max_concurrency=2)
        t = time.monotonic()
        s3.upload_file(path, bucket, key, Config=cfg)
        print(f"{time.monotonic() - t:.3f}")
    elif cmd == "empty":
        # empty BUCKET [delete]: removes every object and unfinished upload, then the bucket
        # itself with "delete".
        bucket = args[0]
        for k in objects(s3, bucket, ""):
            s3.delete_object(Bucket=bucket, Key=k)
        for k, uid, _, _ in uploads(s3, bucket, ""):
            s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=uid)
        if args[1:] == ["delete"]:
            s3.delete_bucket(Bucket=bucket)
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


def served(argv):
    """served LOG...: one line per transfer in the nodes' JSON logs: node, command, path,
    bytes, seconds, completed. The node is the log file's name without .log."""
    for log in argv:
        node = os.path.basename(log).removesuffix(".log")
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if j.get("event") == "transfer":
                    print(
                        node,
                        j.get("command"),
                        j.get("path"),
                        j.get("bytes"),
                        j.get("seconds"),
                        j.get("completed"),
                        j.get("client"),
                    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "served":
        sys.exit(served(sys.argv[2:]))
    sys.exit(main(sys.argv))
