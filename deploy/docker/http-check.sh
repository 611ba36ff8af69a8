#!/bin/bash
# Container health check without curl: GET http://127.0.0.1:PORT/PATH with
# bash's /dev/tcp and succeed when the answer is 200 and contains TEXT.
# Usage: http-check PORT PATH TEXT
set -eu
port=$1 path=$2 text=$3
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$path" >&3
reply=$(timeout 3 cat <&3)
case "$reply" in
  "HTTP/1."?" 200"*) ;;
  *) echo "http-check: no 200 from :$port$path" >&2; exit 1 ;;
esac
case "$reply" in
  *"$text"*) exit 0 ;;
  *) echo "http-check: :$port$path does not contain $text" >&2; exit 1 ;;
esac
