#!/bin/sh
# Compiles shaders/*.comp to SPIR-V (go generate ./gpu/vulkan/). Needs
# glslangValidator (Debian: glslang-tools); the .spv files are committed,
# so building llmlab needs no shader compiler. Shaders named *_sg.comp use
# subgroup operations and target Vulkan 1.1 (SPIR-V 1.3); the backend runs
# them only on devices that have them. The rest target Vulkan 1.0.
set -e
cd "$(dirname "$0")/shaders"
for f in *.comp; do
	env=vulkan1.0
	case "$f" in *_sg.comp) env=vulkan1.1 ;; esac
	glslangValidator -V --target-env "$env" -o "${f%.comp}.spv" "$f" >/dev/null || {
		glslangValidator -V --target-env "$env" -o "${f%.comp}.spv" "$f"
		exit 1
	}
done
