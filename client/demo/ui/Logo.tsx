export function Logo({ size = 28 }: { size?: number }) {
  return (
    <svg width={size} height={size} viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="var(--accent)" />
      <path d="M10 9v14M10 16l8-7M13 14l7 9" stroke="white" strokeWidth="3" fill="none" strokeLinecap="round" />
    </svg>
  );
}
