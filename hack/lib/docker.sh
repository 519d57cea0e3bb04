# The Docker CLI to build with, shared by the hack/ scripts that build images.
# Source it after defining say(), the script's own message prefix.

# buildkit_cli: print the first Docker CLI that can build with BuildKit.
buildkit_cli() {
  # A docker CLI 23 or newer builds with BuildKit only through the buildx plugin; an
  # older one (Debian's docker.io 20.10) has the BuildKit client built in. Take the
  # first CLI that can, so both an ordinary workstation and a machine with Debian's
  # engine plus a newer, plugin-less CLI work.
  local cli major
  for cli in docker /usr/bin/docker; do
    command -v "$cli" >/dev/null 2>&1 || continue
    if "$cli" buildx version >/dev/null 2>&1; then
      printf '%s\n' "$cli"
      return 0
    fi
    major=$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)
    if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -lt 23 ]; then
      printf '%s\n' "$cli"
      return 0
    fi
  done
  say "no docker CLI here can build with BuildKit: a CLI 23 or newer needs the" \
    "buildx plugin, or install Debian's docker.io (hack/docker-engine.sh install)" \
    "whose 20.10 CLI has BuildKit built in"
  return 1
}
