/** Short names for the services' schemas (generated from their OpenAPI documents). */
import type { components as Authorization } from "./generated/authorization";
import type { components as RepositoryApi } from "./generated/repository";
import type { components as Runner } from "./generated/runner";
import type { components as Studio } from "./generated/studio";

type A = Authorization["schemas"];
type R = RepositoryApi["schemas"];
type S = Studio["schemas"];
type X = Runner["schemas"];

// authorization
export type Me = A["MeOut"];
export type User = A["UserOut"];
export type Project = A["ProjectOut"];
export type Role = A["Role"];
export type MachineToken = A["TokenOut"];
export type NewMachineToken = A["NewTokenOut"];
export type LoginAnswer = A["LoginOut"];

// repository
export type Repository = R["RepositoryOut"];
export type RepositoryIn = R["RepositoryIn"];
export type Scan = R["ScanOut"];
export type ScannedAction = R["ScannedActionOut"];
export type Issue = R["IssueOut"];
export type ActionSource = R["ActionOut"];
export type Build = R["BuildOut"];
export type BuildSummary = R["BuildSummaryOut"];

// studio
export type StoreAction = S["ActionOut"];
export type ActionIO = S["IOOut"];
export type IOType = S["IOType"];
export type WorkflowSummary = S["WorkflowSummary"];
export type Workflow = S["WorkflowOut"];
export type WorkflowStep = S["StepOut"];
export type StudioDeployment = S["DeploymentOut"];
export type Snapshot = S["SnapshotOut"];
export type SnapshotStep = S["SnapshotStepOut"];
export type ProblemOut = S["ProblemOut"];

// runner
export type Deployment = X["DeploymentOut"];
export type StepPlacement = X["StepPlacementOut"];
export type Run = X["RunOut"];
export type RunDetail = X["RunDetailOut"];
export type Execution = X["ExecutionOut"];
export type LogLine = X["LogLineOut"];
export type Site = X["SiteOut"];
export type NodePool = X["NodePoolOut"];
