// Types for static/'s imports of what scripts/build-web generates (jco transpile --instantiation
// async of the engine component -> build/web/engine/inference.js), for tsc only (web/tsconfig.json
// maps it in with rootDirs). The instance is used untyped: its exports are the WIT interfaces.
export type GetCoreModule = (name: string) => WebAssembly.Module | Promise<WebAssembly.Module>;
export function instantiate(
  getCoreModule: GetCoreModule,
  imports: Record<string, unknown>,
  instantiateCore?: (module: WebAssembly.Module, imports?: WebAssembly.Imports) => WebAssembly.Instance | Promise<WebAssembly.Instance>,
): Promise<any>;
