"""The S3 calls of tests/util/ceph.rs, through boto3: python3 -c "$(cat s3.py)" OP ARGS...

The gateway and the keys come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
and AWS_REGION. Object keys travel as the hex of their UTF-8 bytes, in both directions, so
that any name (spaces, newlines, a leading dash) comes through whole.

  mb BUCKET                   create the bucket
  ls BUCKET PREFIX_HEX PAGE   ListObjectsV2 in pages of PAGE keys, to the end: "SIZE KEY_HEX"
                              lines
  get BUCKET KEY_HEX          the object's bytes on stdout; exit 3 when there is no such key
  put BUCKET KEY_HEX          the object's bytes from stdin
  uploads BUCKET              ListMultipartUploads to the end: "KEY_HEX UPLOAD_ID" lines
  exec CODE ARGS...           runs CODE with `s3` (the client), `sys` and `args` (ARGS)
"""
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["AWS_ENDPOINT_URL"],
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    region_name=os.environ["AWS_REGION"],
    config=Config(
        s3={"addressing_style": "path"},
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
    ),
)


def key(h):
    return bytes.fromhex(h).decode()


def main(op, args):
    if op == "mb":
        s3.create_bucket(Bucket=args[0])
    elif op == "ls":
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=args[0], Prefix=key(args[1]), PaginationConfig={"PageSize": int(args[2])}
        )
        for page in pages:
            for o in page.get("Contents", []):
                print(o["Size"], o["Key"].encode().hex())
    elif op == "get":
        try:
            body = s3.get_object(Bucket=args[0], Key=key(args[1]))["Body"].read()
        except ClientError as e:
            if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
                sys.exit(3)
            raise
        sys.stdout.buffer.write(body)
    elif op == "put":
        s3.put_object(Bucket=args[0], Key=key(args[1]), Body=sys.stdin.buffer.read())
    elif op == "uploads":
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=args[0]):
            for u in page.get("Uploads", []):
                print(u["Key"].encode().hex(), u["UploadId"])
    elif op == "exec":
        exec(args[0], {"s3": s3, "sys": sys, "args": args[1:]})
    else:
        sys.exit(f"s3.py: unknown operation {op!r}")


main(sys.argv[1], sys.argv[2:])
