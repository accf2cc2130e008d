#!/bin/sh
# The upgrade lab in one command: compose/lab.sh up | check | migrate | verify | down | build | config
#   up      build the images that are missing (compose/build_images.py), start the old and the new
#           server and the pgshift container, load the sample, run pgshift check, print its report
#   check, migrate, verify [OPTION]...
#           run that pgshift command in the pgshift container, old server → new server
#   down    stop and remove the containers (and the servers' data with them)
#   build   (re)build the images only (--force to rebuild existing ones)
#   config  print the resolved compose file (docker-compose config)
# OLD_MAJOR (14), NEW_MAJOR (18), OLD_PORT (54314), NEW_PORT (54318) and SAMPLE (pagila) choose
# the lab, LAB_PROJECT the compose project (pgshift-lab); PYTHON is the Python with pgshift
# installed (default: python3).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
compose="docker-compose -f $here/upgrade-lab.yml -p ${LAB_PROJECT:-pgshift-lab}"
python=${PYTHON:-python3}
case "${1:-up}" in
  up)
    "$python" "$here/build_images.py" "${OLD_MAJOR:-14}" "${NEW_MAJOR:-18}"
    $compose up -d
    # The pgshift container's log: the sample load and the check report, up to "lab: ready".
    for _ in $(seq 1 300); do
      if $compose logs --no-color pgshift 2>/dev/null | grep -q "lab: ready"; then break; fi
      if [ "$($compose ps -q pgshift | xargs -r docker inspect -f '{{.State.Running}}')" = false ]; then break; fi
      sleep 1
    done
    $compose logs --no-color pgshift | sed 's/^[^|]*| //'
    ;;
  check|migrate|verify)
    command=$1; shift
    $compose exec -T pgshift sh -c "pgshift $command \"\$SOURCE\" \"\$TARGET\" \"\$@\"" sh "$@"
    ;;
  down) $compose down -v ;;
  build) shift; "$python" "$here/build_images.py" "${OLD_MAJOR:-14}" "${NEW_MAJOR:-18}" "$@" ;;
  config) $compose config ;;
  *) echo "usage: $0 up | check | migrate | verify | down | build | config" >&2; exit 64 ;;
esac
