# Debian package installs shared by the hack/install-*.sh scripts. Source it after
# defining say(), the script's own message prefix.

# require_root WHAT PACKAGE...: stop with the command to run when not root.
require_root() {
    local what=$1
    shift
    if [[ $(id -u) -ne 0 ]]; then
        say "$what is missing and installing it needs root; run this script as root" \
            "(or: sudo apt-get install -y $*)." >&2
        exit 1
    fi
}

# apt_install WHAT PACKAGE...: install as root. A fresh machine's package lists may
# be stale or absent, so a failed install refreshes them once and retries.
apt_install() {
    require_root "$@"
    shift
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@"; then
        say "apt-get install failed; refreshing the package lists once and retrying"
        apt-get update
        apt-get install -y --no-install-recommends "$@"
    fi
}
