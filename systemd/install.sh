#!/usr/bin/env bash
# Installs vigil from this source tree onto this machine, under systemd. Run as root.
#   systemd/install.sh            build (release), install, enable and start vigild
# Layout: /usr/bin/{vigild,vigil}, /usr/lib/vigil/plugins/libvigil_<plugin>.so for the six
# standard plugins, /etc/vigil/config.toml
# (kept if it exists), /etc/vigil/policies, group "vigil" for the control socket.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

cargo build --release --workspace --exclude vigil-test-plugins
install -d -m 0755 /usr/lib/vigil/plugins /etc/vigil /etc/vigil/policies
install -m 0755 target/release/vigild target/release/vigil /usr/bin/
# The standard plugins by name: a glob would also pick up libraries that are not plugins to
# ship (the test fixtures' libvigil_test_plugins.so, left over from a `cargo build`).
PLUGINS=(files packages accounts services sysctl ports)
for p in "${PLUGINS[@]}"; do
  so="target/release/libvigil_$p.so"
  [ -f "$so" ] || { echo "install.sh: $so was not built" >&2; exit 1; }
  install -m 0644 -o root -g root "$so" /usr/lib/vigil/plugins/
done
if [ -d policies ]; then
  for p in policies/*.toml; do [ -e "$p" ] && install -m 0644 "$p" /etc/vigil/policies/; done
fi
if [ ! -e /etc/vigil/config.toml ]; then
  sed -e 's#^policy_dir = .*#policy_dir = "/etc/vigil/policies"#' \
      -e 's#^state_dir = .*#state_dir = "/var/lib/vigil"#' \
      -e 's#^socket = .*#socket = "/run/vigil/vigil.sock"#' \
      -e 's#^plugin_dir = .*#plugin_dir = "/usr/lib/vigil/plugins"#' \
      -e 's@^# socket_group = "vigil"@socket_group = "vigil"@' \
      config.toml.example > /etc/vigil/config.toml
  chmod 0640 /etc/vigil/config.toml
fi
getent group vigil >/dev/null || groupadd --system vigil
install -m 0644 systemd/vigild.service /etc/systemd/system/vigild.service
/usr/bin/vigild --check-config /etc/vigil/config.toml
systemctl daemon-reload
systemctl enable --now vigild.service
echo "vigild installed; add administrators to the 'vigil' group and as [[user]] in /etc/vigil/config.toml"
