#!/bin/sh
# Refreshes the chat page's libraries from npm (versions pinned in package.json and
# package-lock.json): marked (Markdown), DOMPurify (sanitises the HTML that Markdown of
# model output makes), highlight.js (code). The copies here are committed and embedded in
# the binary at build time (CMakeLists.txt: web/*.html, web/vendor/*.{js,css,txt}), so
# neither the build nor the server needs the network.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
cp node_modules/marked/lib/marked.umd.js marked.js
cp node_modules/dompurify/dist/purify.min.js purify.min.js
cp node_modules/@highlightjs/cdn-assets/highlight.min.js highlight.min.js
cat node_modules/@highlightjs/cdn-assets/styles/github.min.css > highlight.css
{
  for p in marked dompurify @highlightjs/cdn-assets; do
    echo "== $p $(node -p "require('./node_modules/$p/package.json').version")"
    cat "node_modules/$p/LICENSE"
    echo
  done
} > LICENSES.txt
rm -rf node_modules
