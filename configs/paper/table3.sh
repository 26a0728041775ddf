#!/usr/bin/env bash
# Paper Table III: pairwise functions of NL34-LinkNet. The baseline and embedded Gaussian rows are
# Table II's linknet and nl34-linknet runs: trained once, whichever script comes first.
# DATA=path/to/deepglobe/train bash configs/paper/table3.sh    (DRY_RUN=1 prints the commands only)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

#   arch          pairwise           paper mIoU (Table III)
row linknet       embedded_gaussian  63.07      # baseline (pairwise unused)
row nl34-linknet  dot_product        64.04
row nl34-linknet  gaussian           64.23
row nl34-linknet  embedded_gaussian  64.59
summary
