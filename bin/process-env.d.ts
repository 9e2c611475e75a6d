export declare const GLIBC_TUNABLES: string;
export declare function missingProcessEnv(env?: NodeJS.ProcessEnv): Record<string, string>;
export declare function rerunWithProcessEnv(args?: string[]): Promise<boolean>;
