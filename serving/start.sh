#!/bin/sh
# The serving image's entry point: nginx (the front door, wms/serving/front_door.py) on 8080 in front of TorchServe's
# inference API on 127.0.0.1:8086, then TorchServe in the foreground. The handler's metrics folder is emptied
# first, so that a restarted container does not add up an earlier run's samples.
set -eu
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p /tmp/wms-front-door/logs /tmp/wms-front-door/nginx-tmp
nginx -p /tmp/wms-front-door -c /home/model-server/nginx.conf
exec torchserve --foreground --ncs --model-store model-store --ts-config config.properties \
  --models "${MODEL_NAME}=${MODEL_NAME}.mar"
