#!/usr/bin/env bash
# Downloads recommended models for quiverd into ./models (or $1), checks
# them, and prints the flags that serve them:
#   embed/     BAAI/bge-small-en-v1.5                   English embeddings (BERT, 384-d)
#   embed-multilingual/ intfloat/multilingual-e5-small  100 languages, Korean included
#                                                       (BERT with XLM-R's SentencePiece tokenizer)
#   rerank/    cross-encoder/ms-marco-MiniLM-L-6-v2     reranker (BERT cross-encoder)
#   llm/       Qwen/Qwen2.5-0.5B-Instruct-GGUF, Q8_0    chat model (qwen2, GGUF Q8_0)
# Each file is checked against the SHA-256 Hugging Face publishes for it (the
# Git LFS object id in the repository's file listing), and the sums are kept
# in <dir>/SHA256SUMS; a later run verifies existing files against them and
# downloads only what is missing or damaged.
#
# Every model here is a format quiverd's tests cover: BERT encoders and
# cross-encoders in Hugging Face directories (safetensors; tokenizer.json
# WordPiece, or Unigram with SentencePiece's Precompiled normalizer and
# Metaspace; sentence-transformers Pooling/Normalize), and GGUF Q8_0 files
# of the qwen2 architecture with their chat template. quiverd serves one
# embedding model at a time: pick embed/ or embed-multilingual/.
#
#   scripts/fetch-models.sh [DIR]
set -euo pipefail

dir="${1:-models}"
base="https://huggingface.co"
mkdir -p "$dir"
sums="$dir/SHA256SUMS"
touch "$sums"

# expected_sha256 REPO REVISION PATH: the LFS sha256 of a file, or empty for
# small files kept in Git (their integrity rests on HTTPS).
expected_sha256() {
  curl -fsSL "$base/api/models/$1/tree/$2" | python3 -c '
import json, sys
want = sys.argv[1]
for entry in json.load(sys.stdin):
    if entry.get("path") == want:
        print((entry.get("lfs") or {}).get("oid", ""))
' "$3"
}

# fetch REPO REVISION PATH DEST
fetch() {
  local repo="$1" rev="$2" path="$3" dest="$4"
  mkdir -p "$(dirname "$dest")"
  local recorded
  recorded="$(awk -v f="$dest" '$2 == f {print $1}' "$sums")"
  if [[ -f "$dest" && -n "$recorded" ]]; then
    if echo "$recorded  $dest" | sha256sum --check --status; then
      echo "ok       $dest"
      return
    fi
    echo "damaged  $dest: downloading again"
  fi
  local sub=""
  [[ "$(dirname "$path")" != "." ]] && sub="/$(dirname "$path")"
  local want
  want="$(expected_sha256 "$repo" "$rev$sub" "$path")"
  echo "fetching $repo/$path"
  curl -fL --retry 3 -o "$dest.part" "$base/$repo/resolve/$rev/$path"
  local got
  got="$(sha256sum "$dest.part" | cut -d' ' -f1)"
  if [[ -n "$want" && "$got" != "$want" ]]; then
    rm -f "$dest.part"
    echo "error: $dest: sha256 $got, but Hugging Face lists $want" >&2
    exit 1
  fi
  mv "$dest.part" "$dest"
  grep -v "  $dest\$" "$sums" > "$sums.tmp" || true
  echo "$got  $dest" >> "$sums.tmp"
  mv "$sums.tmp" "$sums"
}

embed=BAAI/bge-small-en-v1.5
for f in config.json model.safetensors tokenizer.json modules.json sentence_bert_config.json \
         1_Pooling/config.json; do
  fetch "$embed" main "$f" "$dir/embed/$f"
done

multi=intfloat/multilingual-e5-small
for f in config.json model.safetensors tokenizer.json modules.json sentence_bert_config.json \
         1_Pooling/config.json; do
  fetch "$multi" main "$f" "$dir/embed-multilingual/$f"
done

rerank=cross-encoder/ms-marco-MiniLM-L-6-v2
for f in config.json model.safetensors tokenizer.json; do
  fetch "$rerank" main "$f" "$dir/rerank/$f"
done

llm=Qwen/Qwen2.5-0.5B-Instruct-GGUF
fetch "$llm" main qwen2.5-0.5b-instruct-q8_0.gguf "$dir/llm/qwen2.5-0.5b-instruct-q8_0.gguf"

cat <<FLAGS

Models are in $dir. Serve them with:

  quiverd --embed-model=$dir/embed --rerank-model=$dir/rerank \\
          --llm-model=$dir/llm/qwen2.5-0.5b-instruct-q8_0.gguf

or, for Korean and other languages, --embed-model=$dir/embed-multilingual
(a collection then binds --embedding-model=embed-multilingual); then, for
example:

  quiver collections create docs --embedding-model=embed --text-analyzer=english
  quiver ingest docs ./my-notes
  quiver ask docs "What did we decide about the release?" --rerank
FLAGS
