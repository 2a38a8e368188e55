{{/* The init container that installs libvgpu.so and ld.so.preload under <gpuHookPath>/vgpu
     on the host: the device plugin and the DRA plugin (templates/dra-plugin.yaml) both need it. */}}
{{- define "hami.installLibvgpu" -}}
{{- $hook := .Values.global.gpuHookPath -}}
# install libvgpu.so (HAMi-core's place) on the host, <gpuHookPath>/vgpu/, and the
# ld.so.preload that the device plugin mounts over each container's /etc/ld.so.preload.
# Its content is libvgpu's path inside the container, which is the host path: the
# plugin mounts the library at the same path. Both are written to a temporary name and
# renamed (atomic for containers starting meanwhile). A directory in their place is
# what the runtime made of a missing bind source; it is replaced. The image's /bin/sh
# is dash: POSIX sh only.
- name: install-libvgpu
  image: {{ include "hami.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - sh
    - -c
    - |
      set -eu
      src=/opt/hami/lib/libvgpu.so
      dst=/host-vgpu
      mkdir -p "$dst/containers"
      for name in libvgpu.so ld.so.preload; do
        if [ -d "$dst/$name" ] && [ ! -L "$dst/$name" ]; then
          echo "replacing the directory {{ $hook }}/vgpu/$name with a file"
          rm -rf "$dst/$name"
        fi
        rm -rf "$dst/$name.tmp"
      done
      cp -f "$src" "$dst/libvgpu.so.tmp"
      chmod 0755 "$dst/libvgpu.so.tmp"
      mv -f "$dst/libvgpu.so.tmp" "$dst/libvgpu.so"
      printf '%s\n' {{ printf "%s/vgpu/libvgpu.so" $hook | squote }} > "$dst/ld.so.preload.tmp"
      chmod 0644 "$dst/ld.so.preload.tmp"
      mv -f "$dst/ld.so.preload.tmp" "$dst/ld.so.preload"
      echo "installed $src to {{ $hook }}/vgpu/libvgpu.so and {{ $hook }}/vgpu/ld.so.preload"
  securityContext:
    runAsUser: 0
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL], add: [CHOWN, DAC_OVERRIDE, FOWNER]}
  volumeMounts:
    - {name: vgpu, mountPath: /host-vgpu}
{{- end -}}
