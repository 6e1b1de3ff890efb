#!/bin/sh
# Compiles shaders/*.comp to SPIR-V (go generate ./gpu/vulkan/). Needs
# glslangValidator (Debian: glslang-tools); the .spv files are committed,
# so building llmlab needs no shader compiler.
set -e
cd "$(dirname "$0")/shaders"
for f in *.comp; do
	glslangValidator -V --target-env vulkan1.0 -o "${f%.comp}.spv" "$f" >/dev/null || {
		glslangValidator -V --target-env vulkan1.0 -o "${f%.comp}.spv" "$f"
		exit 1
	}
done
