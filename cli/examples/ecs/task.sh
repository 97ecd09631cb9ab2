#!/bin/sh
# An example task: reports progress to the wrapper's status listener when it is enabled.
set -eu
echo "task starting with $# argument(s); execution ${PROC_WRAPPER_TASK_EXECUTION_UUID:-offline}"
for i in 1 2 3; do
  sleep 1
  echo "step $i done"
done
