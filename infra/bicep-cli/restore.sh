#!/usr/bin/env bash
# Restores the Bicep CLI from NuGet (the package Azure.Bicep.CommandLine.linux-x64,
# version pinned in bicep-cli.csproj beside this script) and prints the path of
# its executable, `tools/bicep` in the package, as the last line of stdout.
# Idempotent: when the package is already in the global packages folder, no
# restore runs. Needs `dotnet`; nothing is downloaded from anywhere but NuGet.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$here/bicep-cli.csproj"
package="azure.bicep.commandline.linux-x64"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if ! command -v dotnet >/dev/null 2>&1; then
  echo "restore.sh: dotnet is not installed; the Bicep CLI comes from NuGet through it" >&2
  exit 3
fi

version="$(sed -n 's/.*Include="Azure\.Bicep\.CommandLine\.linux-x64" Version="\[\([^]]*\)\]".*/\1/p' "$project")"
if [ -z "$version" ]; then
  echo "restore.sh: no pinned Azure.Bicep.CommandLine.linux-x64 version in $project" >&2
  exit 1
fi

# NUGET_PACKAGES and NuGet.Config may move the global packages folder: ask dotnet.
packages="$(dotnet nuget locals global-packages --list | sed -n 's/^global-packages: //p')"
packages="${packages%/}"
bicep="$packages/$package/$version/tools/bicep"

if [ ! -f "$bicep" ]; then
  # Restore output (obj/) goes to a scratch folder, not into the repository.
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  dotnet restore "$project" --verbosity quiet \
    -p:BaseIntermediateOutputPath="$scratch/obj/" -p:MSBuildProjectExtensionsPath="$scratch/obj/" >&2
  if [ ! -f "$bicep" ]; then
    echo "restore.sh: the restore finished but $bicep does not exist" >&2
    exit 1
  fi
fi
# NuGet extracts files without their execute bit.
[ -x "$bicep" ] || chmod +x "$bicep"
echo "$bicep"
