#!/usr/bin/env bash
# Paper Table II: non-local blocks at different stages (ResNet34 encoder, embedded Gaussian pairwise).
# DATA=path/to/deepglobe/train bash configs/paper/table2.sh    (DRY_RUN=1 prints the commands only)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

#   arch          pairwise           paper mIoU   params (Table II)
row linknet       embedded_gaussian  63.07      # 21.657M  baseline: no block (pairwise unused)
row dlinknet      embedded_gaussian  64.12      # 31.096M  D-LinkNet: dilation block (pairwise unused)
row nl3-linknet   embedded_gaussian  64.15      # 21.690M  NLB3
row nl4-linknet   embedded_gaussian  64.40      # 21.789M  NLB4
row nl34-linknet  embedded_gaussian  64.59      # 21.822M  NLB3 + NLB4
summary
